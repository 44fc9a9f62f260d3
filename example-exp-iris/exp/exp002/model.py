"""The model of this experiment, built from `cfg.model`."""

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

MODELS = {
    "decision_tree": DecisionTreeClassifier,
    "random_forest": RandomForestClassifier,
    "logistic_regression": LogisticRegression,
}


def build_model(model_cfg, seed):
    params = dict(model_cfg.params)
    if model_cfg.name != "logistic_regression":
        params["random_state"] = seed
    return MODELS[model_cfg.name](**params)
