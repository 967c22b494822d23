"""The paper's tables and figures as data (`specs`), its published numbers (`published`), the
cells of each at a scale (`cells`), and renderers (`render`).
`python -m experiments.paper TABLE --scale tiny|mini|paper [--root DIR]`."""
