"""The model: scikit-learn's HistGradientBoosting, or LightGBM with `model.name: lightgbm`.

LightGBM is imported only when asked for, so the starter runs with scikit-learn alone.
"""


def build_model(model_cfg, task, seed):
    params = dict(model_cfg.params)
    if model_cfg.name == "lightgbm":
        import lightgbm

        model = lightgbm.LGBMClassifier if task == "classification" else lightgbm.LGBMRegressor
        return model(random_state=seed, verbose=-1, **params)
    if model_cfg.name == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        model = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
        return model(random_state=seed, **params)
    raise ValueError(f"model.name {model_cfg.name!r}: use hist_gradient_boosting or lightgbm")
