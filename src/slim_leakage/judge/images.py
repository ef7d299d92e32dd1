"""Images as the judge sends them: the type read from the bytes, converted when an API won't take it.

The file name says nothing reliable about an image (a ``.png`` may hold a JPEG, a ``.gif``
goes out as a GIF), so the type is read from the bytes with Pillow. Types every judge API
accepts inline are sent as they are; anything else is converted to PNG first. The accepted set
is what both API families take: Gemini's inline image types are PNG, JPEG, WEBP, HEIC and
HEIF (ai.google.dev/gemini-api/docs/image-understanding), OpenAI's PNG, JPEG, WEBP and
non-animated GIF (platform.openai.com/docs/guides/images-vision); their common part is PNG,
JPEG and WEBP. An image Pillow cannot read is an error naming the file, before any request.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from ..errors import UsageError
from .backends.base import ImageInput

#: Pillow format name -> MIME type, for the formats every judge API accepts inline.
ACCEPTED = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def _unreadable(path: Path, exc: Exception) -> UsageError:
    return UsageError(
        f"The image {str(path)!r} cannot be read as an image ({type(exc).__name__}: {exc}).",
        hint="Regenerate it, or replace it with a PNG or JPEG file of the same name.",
    )


def check_image(path: Path) -> None:
    """Fail now, naming the file, if ``path`` is not an image Pillow can read.

    Raises:
        UsageError: If the file is not a readable image.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except (OSError, SyntaxError, ValueError) as exc:
        raise _unreadable(path, exc) from exc


def load_image(path: Path, role: str, entity: str | None = None) -> ImageInput:
    """An image file as a request input (bytes, type from the bytes, SHA-256, size), no caption.

    Args:
        path: The image file.
        role: ``vanilla``, ``method``, ``reference`` or ``image``.
        entity: For reference images, the entity drawn alone.

    Raises:
        UsageError: If the file is not a readable image.
    """
    from PIL import Image

    data = Path(path).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            kind = im.format
            frames = getattr(im, "n_frames", 1)
            if kind not in ACCEPTED or frames > 1:
                im.seek(0)
                buffer = io.BytesIO()
                im.convert("RGBA" if "A" in im.getbands() else "RGB").save(buffer, format="PNG")
                data, kind = buffer.getvalue(), "PNG"
    except (OSError, SyntaxError, ValueError) as exc:
        raise _unreadable(Path(path), exc) from exc
    return ImageInput(
        data=data,
        mime=ACCEPTED[kind],
        sha256=hashlib.sha256(data).hexdigest(),
        role=role,
        entity=entity,
        width=width,
        height=height,
    )
