"""opsgenie-export: mirror an Opsgenie account into Port's software catalog in one run."""

__version__ = "0.1.0"
