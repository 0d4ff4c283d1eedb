"""``OnnxEmbedder``: the Jina Executor that serves an exported embedding model with onnxruntime.

It sees only ONNX: a model exported from PyTorch, Keras or Paddle is served the same way. No postponed
annotations (Jina reads the ``docs`` type at class creation) and absolute imports only, so that Jina can
load this file by path (``py_modules``) inside the Executor image.
"""

from pathlib import Path
from typing import Any

from docarray import DocumentArray
from jina import Executor, requests

from finetuner.precision import cpu_description
from finetuner.serving.images import MAX_PIXELS, ImageSource
from finetuner.serving.model import DocumentError, EmbeddingRuntime


class OnnxEmbedder(Executor):
    """Fills ``doc.embedding`` for every Document of a request.

    Documents carry ``.tensor`` (image, vector or token-id models), ``.text`` (text models, tokenized with
    the tokenizer exported beside the model), or, for image models, ``.blob`` (JPEG/PNG/WebP bytes) or ``.uri``
    (a ``data:`` URI, or a file inside ``uri_folder``), decoded and preprocessed as the export recorded. Each request is checked against the model's input names,
    dtypes and shapes; a bad Document fails the request with an error that names it.
    """

    def __init__(
        self, model_path: str, threads: int = 0, providers: list[str] | None = None, batch_size: int = 64,
        uri_folder: str | None = None, fetch_network: bool = False, max_pixels: int = MAX_PIXELS,
        session_choice: str = "quiet", drop_image_content: bool = False, **kwargs: Any,
    ) -> None:
        """``threads``: onnxruntime intra-op threads (0: one per physical core); ``providers``: CUDA if available,
        else CPU. Image models: ``uri_folder`` is the one folder whose files a ``doc.uri`` may name (default:
        none); ``fetch_network`` lets ``doc.uri`` be an http(s) address; ``max_pixels`` bounds each image.
        ``session_choice``: onnxruntime options by name, or ``auto`` to time the candidates here and keep the
        fastest (logged). ``drop_image_content``: answer with each Document's id and embedding only, its
        ``blob``, ``tensor`` and ``data:`` URI left out (a request's ``parameters={"drop_image_content": ...}``
        decides for that request): the image a client sent need not travel back to it."""
        super().__init__(**kwargs)
        self.drop_image_content = bool(drop_image_content)
        source = ImageSource(
            folder=Path(uri_folder) if uri_folder else None, network=bool(fetch_network), max_pixels=int(max_pixels)
        )
        self.runtime = EmbeddingRuntime(
            model_path, threads=threads, providers=providers, batch_size=batch_size, session_choice=session_choice,
            image_source=source,
        )
        for line in startup_log(self.runtime):
            self.logger.info(line)
        self.logger.info(
            f"serving {model_path} ({self.runtime.meta.framework}, output_dim {self.runtime.meta.output_dim}) "
            f"on {self.runtime.providers[0]}"
        )

    @requests
    def encode(  # no return annotation: Jina reads it as a schema
        self, docs: DocumentArray, parameters: dict | None = None, **kwargs: Any
    ):
        """Embed the request's Documents in place; report the model in the response's ``__results__``.

        Jina files the returned dict under this replica's name, so clients can see which replica answered.
        """
        info = {"output_dim": self.runtime.meta.output_dim, "provider": self.runtime.providers[0]}
        if docs is None or len(docs) == 0:
            return info
        try:
            embeddings = self.runtime.embed_documents(docs)
        except DocumentError:
            raise
        except Exception as exc:  # an onnxruntime failure: name the request's Documents
            ids = ", ".join(repr(doc.id) for doc in docs[:5]) + (", ..." if len(docs) > 5 else "")
            raise DocumentError(f"Embedding Documents {ids} failed: {exc}") from exc
        docs.embeddings = embeddings
        if (parameters or {}).get("drop_image_content", self.drop_image_content):
            drop_image_content(docs)
        return info


def drop_image_content(docs: DocumentArray) -> None:
    """Clear the image content of embedded Documents (``blob``, ``tensor``, a ``data:`` ``uri``) so that the reply
    carries ids and embeddings: over HTTP every byte of it is base64 and JSON, both ways."""
    for doc in docs:
        doc.blob = None
        doc.tensor = None
        if doc.uri and doc.uri.startswith("data:"):
            doc.uri = None


def startup_log(runtime: EmbeddingRuntime) -> list[str]:
    """What the Executor logs at start: the per-CPU choices (session options, precision) and this CPU."""
    cpu = cpu_description()
    here = f"{cpu['name']} [{' '.join(cpu['flags'])}]"
    seconds = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in runtime.calibration["seconds"].items())
    lines = [f"session options: {runtime.calibration['choice']}" + (f" (timed here: {seconds})" if seconds else "")
             + f"; CPU: {here}"]
    if runtime.precision is not None:
        lines.append(f"precision chosen at export: {runtime.precision.describe()}")
        if runtime.precision.cpu != cpu:
            lines.append("the precision was measured on another CPU kind; export again with quantize='auto' on "
                         "this one to measure it here")
    return lines
