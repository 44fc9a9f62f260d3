"""Create projects and experiments, one module per stage, as cookiecutter is laid out.

- `templates`: find a template (a folder or a git URL), tell copier from cookiecutter, refuse code
  the caller does not trust;
- `builtin`: where kagexp's own templates are, and the git reference recorded for `copier update`;
- `render`: render with copier or cookiecutter, their errors as one line;
- `staging`: build in a hidden temporary folder, then rename (or merge) it into place;
- `init`: `init_project`, a new project;
- `new`: `new_experiment`, numbering, copying or rendering, publishing;
- `copying`: the fast wholesale copy of an experiment folder.

Both `init` and `new` refuse to overwrite, delete only what they created, and never leave half a
result behind. copier and cookiecutter are imported only when a template is rendered.
"""

from kagexp.scaffold.init import InitResult, init_project
from kagexp.scaffold.new import NewExperiment, new_experiment

__all__ = ["InitResult", "NewExperiment", "init_project", "new_experiment"]
