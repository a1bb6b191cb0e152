"""The package layout, which pyproject.toml cannot express alone: the repository's top-level conf/
(the one copy of the Hydra configs) ships as car/conf/ and results/published.yaml as
car/_results/published.yaml, so an installed wheel composes and compares without a checkout
(car/config.py finds them). Metadata, dependencies and console scripts are in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

# every folder is a package to setuptools, data-only ones included (car/assets, conf/dataset, ...)
CAR = find_namespace_packages(include=["car", "car.*"], exclude=["*__pycache__*"])
CONF = ["car.conf"] + [f"car.conf.{name}" for name in find_namespace_packages(where="conf")]

setup(
    packages=CAR + CONF + ["car._results"],
    package_dir={"car.conf": "conf", "car._results": "results"},
    package_data={
        "car": ["clip/model_configs/*.json", "assets/*"],
        **{name: ["*.yaml"] for name in CONF},
        "car._results": ["published.yaml"],
    },
)
