"""The local shell: ``run --local`` as processes on this machine (``runner``), per-stage virtual
environments cached by their requirements (``venvs``), local secret values (``secrets``) and the
questions asked of git (``git``).

Nothing here talks to a cluster or to GitHub.
"""
