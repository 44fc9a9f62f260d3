"""Ship the top-level `templates/` inside the wheel, as the package folder `kagexp/_templates/`.

pyproject.toml cannot both discover packages and map one of them to a folder elsewhere, so the
package list is made here; everything else about the project is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["kagexp", "kagexp.*"]), "kagexp._templates"],
    package_dir={"kagexp._templates": "templates"},
)
