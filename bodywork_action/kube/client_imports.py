"""How ``kube/client.py`` imports the ``kubernetes`` client: only the parts a deploy uses.

Shell (it changes what the import system does, for the length of one import). The package's
``__init__`` and the kubeconfig loader import far more than a deploy runs: the dynamic client,
streams, leader election, and the libraries of two deprecated auth providers. Skipping them took a
deploy process's start-up CPU from 0.8 s to about 0.5 s (bench_deploy cli4); anything that does use
them still gets the real modules, imported then.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from typing import Any


def enter_kubernetes_package_bare() -> None:
    """Let ``kubernetes.client`` and ``kubernetes.config`` be imported without the rest of the package.

    The package's ``__init__`` also imports its dynamic client, websocket streams, leader election,
    informer and utils: a sixth of a deploy's start-up CPU (0.15 s of 0.8 s measured, with its
    client and config), and nothing here uses them. So, unless something imported it already, the
    package is registered as its bare module (what ``module_from_spec`` makes, not executed); the
    submodules named are then imported as any submodule is.
    """
    if "kubernetes" not in sys.modules:
        spec = importlib.util.find_spec("kubernetes")
        if spec is not None and spec.submodule_search_locations is not None:
            sys.modules["kubernetes"] = importlib.util.module_from_spec(spec)


# Modules the client's kubeconfig loader imports at its top but uses for one kind of user only:
# google-auth to refresh an `auth-provider: gcp` token, requests-oauthlib and oauthlib to refresh an
# `auth-provider: oidc` one (both providers are deprecated in favour of exec plugins, and this tool
# refuses auth-provider users before it connects). With `requests`, which they bring, they were
# 0.1–0.2 s of a deploy's start-up CPU (bench_deploy cli4).
AUTH_MODULES_IMPORTED_ON_FIRST_USE = (
    "google.auth.transport.requests",
    "requests_oauthlib",
    "oauthlib.oauth2",
)


class _ModuleOnFirstUse(types.ModuleType):
    """Stands in for a module until one of its attributes is used; that use imports the real one.

    While the kubeconfig loader itself is being imported, its ``from module import name`` gets an
    ``_AttributeOnFirstUse`` instead, so that import costs nothing either."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.loader_importing = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system's questions (__path__, ...): not a package
            raise AttributeError(name)
        if self.loader_importing:
            return _AttributeOnFirstUse(self.__name__, name)
        return getattr(_real_module(self.__name__), name)


class _AttributeOnFirstUse:
    """``module.name``, looked up (importing the module) when it is called or its attributes read."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def _target(self) -> Any:
        return getattr(_real_module(self._module), self._name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)


def _real_module(name: str) -> types.ModuleType:
    if isinstance(sys.modules.get(name), _ModuleOnFirstUse):
        del sys.modules[name]
    return importlib.import_module(name)  # the import system also puts it in place of the stand-in


class _FirstUseFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers the import of each named module with a ``_ModuleOnFirstUse`` (parents import as usual,
    and the import system binds the stand-in to its parent package)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)
        self.stand_ins: list[_ModuleOnFirstUse] = []

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, self) if name in self.names else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        stand_in = _ModuleOnFirstUse(spec.name)
        self.stand_ins.append(stand_in)
        return stand_in

    def exec_module(self, module: types.ModuleType) -> None:
        pass


@contextlib.contextmanager
def auth_modules_imported_on_first_use() -> Iterator[None]:
    """Inside the block, ``AUTH_MODULES_IMPORTED_ON_FIRST_USE`` that are installed import as stand-ins;
    after it, nothing is left in ``sys.modules``: any later import of them is the real one."""
    installed = [name for name in AUTH_MODULES_IMPORTED_ON_FIRST_USE if _installed(name)]
    finder = _FirstUseFinder(installed)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for stand_in in finder.stand_ins:
            stand_in.loader_importing = False
            if sys.modules.get(stand_in.__name__) is stand_in:
                del sys.modules[stand_in.__name__]


def _installed(name: str) -> bool:
    # only the top-level package is looked up: finding "a.b" would import "a" now
    return importlib.util.find_spec(name.partition(".")[0]) is not None
