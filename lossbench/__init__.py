"""lossbench: which loss should I train with, at this class imbalance, on this model?"""

__version__ = "0.1.0"


def _register_resolvers() -> None:
    """The config's own resolvers, registered wherever lossbench is imported (launcher workers included),
    before any config is resolved. Without OmegaConf (a bare install tool reading the version) there is
    nothing to resolve."""
    from lossbench.paths import register_resolver

    try:
        register_resolver()
    except ModuleNotFoundError as e:  # pragma: no cover
        if e.name != "omegaconf":
            raise


_register_resolvers()
