"""Deploy Bodywork pipelines to Kubernetes from GitHub Actions or the command line.

Only the version lives here: importing the package must stay cheap (the ``--help`` start-up budget).
"""

__version__ = "1.0.0"
