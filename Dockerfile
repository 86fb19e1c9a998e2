FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY kms ./kms
COPY storage ./storage
RUN pip install --no-cache-dir .
VOLUME ["/data"]
EXPOSE 9000
ENV COFFER_HOST=0.0.0.0 COFFER_PORT=9000 COFFER_DATA_DIR=/data
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9000/health').status == 200 else 1)"
CMD ["coffer", "serve"]
