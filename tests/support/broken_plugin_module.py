"""A plugin module that fails to import, as a badly packaged third-party plugin would."""

raise ImportError("broken_plugin_module cannot be imported (on purpose)")
