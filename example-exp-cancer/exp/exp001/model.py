"""The models of this project, built from `cfg.model`."""

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def build_model(model_cfg, seed):
    params = dict(model_cfg.params)
    if model_cfg.name == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(**params))
    return RandomForestClassifier(random_state=seed, n_jobs=1, **params)
