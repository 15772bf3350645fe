"""Labels matched by class name: the one rule wherever two labelled splits meet.

A folder numbers its classes in sorted order (``byol.data.folder.list_images``), a named dataset
in its published order, ``byol shard`` in the order of the folder it read. Two splits number their
classes alike only when they hold the same classes, and users split their own images unevenly: a
test folder without ``airplane/`` would have every later label shifted by one. So every protocol
that scores one split against another (kNN, linear, fine-tuning, the kNN monitor's ``--knn-test``,
``--against`` rows, the ablations' kNN) relabels the split it scores with ``labelled_as``: each
image's label becomes its class's index among the *reference* split's classes (the split it fits
on), matched by name. A subset of the reference's classes is scored as it is; a class the reference
lacks cannot be scored and is refused in one line naming it.

Example:
    >>> class_indices(["cat", "dog"], ["airplane", "cat", "dog"], "test", "train")
    [1, 2]
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from byol.data.folder import ImageList, list_images
from byol.errors import ByolError

log = logging.getLogger(__name__)


def class_indices(classes: Sequence[str], reference: Sequence[str], where: str, reference_where: str) -> list[int]:
    """For each name in ``classes`` (``where``'s), its index in ``reference`` (``reference_where``'s).

    Raises ``ByolError`` naming the classes ``reference`` lacks, and the classes it has.
    """
    index = {name: i for i, name in enumerate(reference)}
    foreign = [name for name in classes if name not in index]
    if foreign:
        them = "class " + foreign[0] + " is" if len(foreign) == 1 else "classes " + _names(foreign) + " are"
        raise ByolError(
            f"{where}: its {them} not among the {len(reference)} classes of {reference_where} ({_names(reference)}); "
            "classes are matched by folder name"
        )
    return [index[name] for name in classes]


def labelled_as(images: ImageList, reference: Sequence[str], where: str, reference_where: str) -> ImageList:
    """``images`` with each label its class's index among ``reference`` (by name), and ``reference`` as
    its classes: what a head or memory bank fitted on the reference split predicts.

    ``where`` and ``reference_where`` name the two splits in messages (a folder, a named dataset, an
    option). An unlabelled split is refused in one line.
    """
    if images.labels is None:
        raise unlabelled(where, "scoring it")
    to_reference = class_indices(images.classes, reference, where, reference_where)
    if len(images.classes) < len(reference):
        present = set(images.classes)
        missing = [name for name in reference if name not in present]
        log.info("%s holds %d of the %d classes of %s (none of %s): scored on its own images",
                 where, len(images.classes), len(reference), reference_where, _names(missing))  # fmt: skip
    labels = [to_reference[y] for y in images.labels]
    return dataclasses.replace(images, labels=labels, classes=list(reference))


def unlabelled(where: str, what: str) -> ByolError:
    """The one-line error for a split without labels where ``what`` needs them."""
    return ByolError(
        f"{where} has no labels: class folders (<class>/*.jpg) or a named dataset's labelled split; {what} needs them"
    )


def _names(names: Sequence[str], at_most: int = 10) -> str:
    shown = ", ".join(names[:at_most])
    return shown + (f" and {len(names) - at_most} more" if len(names) > at_most else "")


def labelled_splits(train: str, test: str, test_name: str | None = None) -> tuple[ImageList, ImageList]:
    """The two splits of a protocol, listed and checked before any feature is computed or head trained:
    ``train`` (a labelled folder or named dataset: two classes or more), and ``test`` labelled as
    ``train``'s classes by name (it may hold one class). ``test_name`` names ``test`` in messages."""
    fit = list_images(train)
    if fit.labels is None:
        raise unlabelled(str(train), "fitting on it (two classes or more)")
    return fit, labelled_as(list_images(test, min_classes=1), fit.classes, test_name or str(test), str(train))
