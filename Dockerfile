# syntax=docker/dockerfile:1.4
# The image of the OnnxEmbedder Executor, for `finetuner export-flow --kubernetes/--docker-compose`.
# Build it from the repository root, with the folder that holds the exported model as the `models` context:
#   docker build -f Dockerfile --build-context models=/path/to/export_dir -t finetuner-embedder:latest .
# The model (and a text model's <stem>.tokenizer/ folder) lands in /models; no deep-learning framework is installed.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    JINA_OPTOUT_TELEMETRY=1 \
    JINA_HIDE_SURVEY=1 \
    HF_HUB_OFFLINE=1 \
    PYTHONPATH=/workspace

RUN pip install \
        "jina==3.34.0" "docarray==0.21.0" "pydantic==1.10.27" "fastapi==0.125.0" "starlette==0.50.0" \
        "protobuf==6.33.6" "setuptools<82" "numpy>=2" "pyyaml>=6" \
        "onnx==1.23.2" "onnxruntime==1.32.0" "tokenizers>=0.20"

WORKDIR /workspace
COPY finetuner/__init__.py finetuner/onnx_meta.py finetuner/
COPY finetuner/serving/ finetuner/serving/
COPY finetuner/serving/config.yml config.yml
COPY --from=models . /models/

# Jina's exporters run `jina executor --uses config.yml --host 0.0.0.0 --port ... --uses-with {...}` here.
ENTRYPOINT ["jina"]
CMD ["executor", "--uses", "config.yml", "--host", "0.0.0.0", "--port", "8080", \
     "--uses-with", "{\"model_path\": \"/models/model.onnx\"}"]
