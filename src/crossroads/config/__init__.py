"""Configuration: the one place that reads the config file and the environment. Validated once at
start into a frozen `Settings`; nothing else in the package reads `os.environ`."""

from crossroads.config.loader import admin_key_from_env, load_settings
from crossroads.config.settings import Settings

__all__ = ["Settings", "admin_key_from_env", "load_settings"]
