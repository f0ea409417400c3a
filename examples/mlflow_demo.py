"""Train, track, register and load an iris classifier with an MLflow tracking server.

The script version of the seed's ``mlflow_demo.ipynb``:

1. a small hyper-parameter sweep of a decision tree, each candidate a nested run;
2. pick the best candidate, train it on all the training data and log it;
3. log the feature names and class labels as text artifacts;
4. register the model and point the alias ``production`` at the new version;
5. load ``models:/<name>@production`` back and predict.

Usage::

    python examples/mlflow_demo.py --tracking-uri http://localhost:5000

Inside the cluster the server is at ``http://server.bodywork-mlflow.svc.cluster.local:5000``;
from a laptop use ``kubectl port-forward -n bodywork-mlflow svc/server 5000``. Artifacts are
proxied by the server, so this script needs no cloud credentials.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

import mlflow
import sklearn
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]  # skops refuses to load trees unless told they are safe
MAX_DEPTHS = (1, 2, 3, 5)
RANDOM_STATES = (0, 42)


def evaluate(model, x_test, y_test) -> dict[str, float]:
    predicted = model.predict(x_test)
    return {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "f1": float(f1_score(y_test, predicted, average="macro")),
    }


def run_demo(tracking_uri: str, model_name: str, experiment: str) -> dict:
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.set_experiment(experiment).experiment_id

    iris = load_iris(as_frame=True)
    features, labels = iris.data, iris.target
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.3, random_state=1, stratify=labels
    )

    with mlflow.start_run(run_name="Best Model") as parent:
        for depth, seed in itertools.product(MAX_DEPTHS, RANDOM_STATES):
            with mlflow.start_run(run_name="Candidate Run", nested=True):
                candidate = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(x_train, y_train)
                mlflow.log_params({"max_depth": depth, "random_state": seed})
                mlflow.log_metrics(evaluate(candidate, x_test, y_test))

        best = mlflow.search_runs(
            experiment_ids=[experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
            order_by=["metrics.f1 DESC", "metrics.accuracy DESC"],
            max_results=1,
        ).iloc[0]
        depth, seed = int(best["params.max_depth"]), int(best["params.random_state"])

        model = DecisionTreeClassifier(max_depth=depth, random_state=seed).fit(x_train, y_train)
        scores = evaluate(model, x_test, y_test)
        mlflow.log_params({"max_depth": depth, "random_state": seed, "best_candidate": best["run_id"]})
        mlflow.log_metrics(scores)
        mlflow.log_text("\n".join(features.columns), "features.txt")
        mlflow.log_text("\n".join(str(name) for name in iris.target_names), "classes.txt")
        info = mlflow.sklearn.log_model(
            model,
            name=model_name,
            input_example=x_test.iloc[:2],
            skops_trusted_types=TRUSTED_TYPES,
            # Naming the requirement skips MLflow's inference, which takes seconds per model.
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )

    version = mlflow.register_model(info.model_uri, model_name)
    client = MlflowClient()
    client.set_registered_model_alias(model_name, "production", version.version)

    production = mlflow.sklearn.load_model(f"models:/{model_name}@production")
    predictions = production.predict(x_test)
    classes = client.download_artifacts(parent.info.run_id, "classes.txt")
    with open(classes) as handle:
        class_names = handle.read().split()
    return {
        "experiment_id": experiment_id,
        "run_id": parent.info.run_id,
        "candidates": len(MAX_DEPTHS) * len(RANDOM_STATES),
        "best": {"max_depth": depth, "random_state": seed, **scores},
        "model_name": model_name,
        "model_version": int(version.version),
        "artifact_uri": parent.info.artifact_uri,
        "production_accuracy": float(accuracy_score(y_test, predictions)),
        "sample_predictions": [class_names[int(p)] for p in predictions[:5]],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://localhost:5000")
    )
    parser.add_argument("--model-name", default="iris_classifier")
    parser.add_argument("--experiment", default="Iris Classifier")
    args = parser.parse_args(argv)
    summary = run_demo(args.tracking_uri, args.model_name, args.experiment)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
