"""Seeded signal distributions, OOD shifts and real-data loaders behind one :class:`Task` API.

* :mod:`~landscape.data.task` — :class:`Task`, :class:`Pairs`, :class:`TrainingSet`, :func:`make_task`,
  :func:`task_from_config`, :data:`TASKS`;
* :mod:`~landscape.data.toy` — piecewise-constant denoising signals;
* :mod:`~landscape.data.seismic` — layered reflectivity sections for deconvolution;
* :mod:`~landscape.data.mri` — random ellipse phantoms, lesions;
* :mod:`~landscape.data.real` — real MRI slices shipped inside pip packages (matplotlib, nibabel);
* :mod:`~landscape.data.fastmri` — fastMRI single-coil HDF5 loader;
* :mod:`~landscape.data.streams` — per-split random streams.
"""

from landscape.data.task import SIZES, TASKS, Pairs, Task, TrainingSet, make_task, task_from_config

__all__ = ["TASKS", "SIZES", "Task", "Pairs", "TrainingSet", "make_task", "task_from_config"]
