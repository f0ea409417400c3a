"""The GitHub Actions shell: the action's inputs read once (``inputs``), workflow commands, outputs
and the job summary file (``workflow``), and the action's kubeconfig input (``kubeconfig``).

Nothing here talks to a cluster; ``bodywork_action.action`` wires these to the deploy engine.
"""
