"""The shipped SLIM config an entry must cover (its samples, fingerprint), by name only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..errors import SlimError, ValidationError
from ..records import Sample


@dataclasses.dataclass(frozen=True)
class DatasetReference:
    """The shipped SLIM config an entry must cover.

    Attributes:
        config: Dataset config name (``pairs``).
        fingerprint: The shipped data's fingerprint.
        samples: Its samples (ids, subsets, families are checked).
    """

    config: str
    fingerprint: str | None
    samples: tuple[Sample, ...]


#: config name -> reference, or an error message when the config cannot be loaded.
DatasetResolver = Callable[[str], "DatasetReference"]


def shipped_dataset(config: str) -> DatasetReference:
    """The reference for a config of the SLIM shipped with the package.

    Raises:
        ValidationError: If the config cannot be loaded (unknown name, data missing).
    """
    try:
        from ..slim import dataset_fingerprint, list_configs, load_samples

        if config not in list_configs():  # never a path: only what the package ships
            raise ValidationError(
                f"Dataset config {config!r} is not a shipped SLIM config name (shipped: "
                f"{', '.join(list_configs())}).",
                hint="Entries are evaluated on a shipped config, named as `slim-eval ls "
                "configs` lists it; a file of samples cannot be ranked.",
            )

        samples = tuple(load_samples(config))
        fingerprint = dataset_fingerprint(config)
    except ImportError as exc:
        raise ValidationError(
            f"The shipped SLIM cannot be loaded to check config {config!r} ({exc}).",
            hint="Install the package with its data (pip install -e .) and retry.",
        ) from exc
    except ValidationError:
        raise
    except SlimError as exc:
        raise ValidationError(
            f"Dataset config {config!r} is not a shipped SLIM config: {exc.message}",
            hint="Entries must be evaluated on a shipped config (`slim-eval ls configs`).",
        ) from exc
    return DatasetReference(config=config, fingerprint=fingerprint, samples=samples)


__all__ = ["DatasetReference", "DatasetResolver", "shipped_dataset"]
