"""A scoring service that serves the model MLflow marks ``production``.

The seed's pattern: the model is loaded from the tracking server once, at start-up, from
``models:/<name>@production``. Promoting a new version (moving the alias) and redeploying the
service (for example on a schedule) is how a new model goes live.

Usage::

    python examples/scoring_service.py --tracking-uri http://server.bodywork-mlflow.svc.cluster.local:5000

API:

* ``GET /health`` -> ``{"status": "ok", "model": "models:/iris_classifier@production", "version": "3"}``
* ``POST /api/v1/predict`` with ``{"X": [[5.1, 3.5, 1.4, 0.2], ...]}`` (rows of the four iris
  measurements, in the order the model was trained on) -> ``{"predictions": [0, ...]}``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import mlflow
import pandas as pd
from flask import Flask, jsonify, request
from mlflow import MlflowClient

log = logging.getLogger("scoring_service")


def load_production_model(tracking_uri: str, model_name: str, alias: str = "production"):
    """The model behind ``models:/<name>@<alias>``, its input columns and its version."""
    mlflow.set_tracking_uri(tracking_uri)
    version = MlflowClient().get_model_version_by_alias(model_name, alias).version
    model = mlflow.sklearn.load_model(f"models:/{model_name}@{alias}")
    columns = list(getattr(model, "feature_names_in_", []))
    return model, columns, version


def create_app(model, columns: list[str], model_uri: str, version: str) -> Flask:
    app = Flask(__name__)

    @app.get("/health")
    def health():
        return jsonify(status="ok", model=model_uri, version=str(version))

    @app.post("/api/v1/predict")
    def predict():
        body = request.get_json(silent=True)
        rows = body.get("X") if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
            return jsonify(error='expected JSON {"X": [[f1, f2, ...], ...]}'), 400
        if columns and any(len(r) != len(columns) for r in rows):
            return jsonify(error=f"each row needs {len(columns)} values: {', '.join(columns)}"), 400
        try:
            frame = pd.DataFrame(rows, columns=columns or None, dtype=float)
        except (TypeError, ValueError) as error:
            return jsonify(error=f"rows must hold numbers: {error}"), 400
        return jsonify(predictions=[int(p) for p in model.predict(frame)], model_version=str(version))

    return app


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description="Serve the production iris model from MLflow.")
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "http://localhost:5000")
    )
    parser.add_argument("--model-name", default="iris_classifier")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)

    model, columns, version = load_production_model(args.tracking_uri, args.model_name)
    model_uri = f"models:/{args.model_name}@production"
    log.info("loaded %s (version %s)", model_uri, version)
    create_app(model, columns, model_uri, version).run(host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
