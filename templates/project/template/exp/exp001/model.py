"""The model of this experiment, built from `cfg.model` for the task the metric belongs to."""

from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

MODELS = {
    "classification": {
        "decision_tree": DecisionTreeClassifier,
        "random_forest": RandomForestClassifier,
        "logistic_regression": LogisticRegression,
    },
    "regression": {
        "decision_tree": DecisionTreeRegressor,
        "random_forest": RandomForestRegressor,
        "ridge": Ridge,
    },
}
DETERMINISTIC = {"logistic_regression", "ridge"}  # models without a random_state


def build_model(model_cfg, task, seed):
    params = dict(model_cfg.params)
    if model_cfg.name not in DETERMINISTIC:
        params["random_state"] = seed
    return MODELS[task][model_cfg.name](**params)
