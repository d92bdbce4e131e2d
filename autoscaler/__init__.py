"""autoscaler: SLO-driven autoscaling of Laravel queue workers run by Supervisor."""

__version__ = "0.1.0"
