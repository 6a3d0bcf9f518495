"""Jinja2 templates for `cnnspec codegen`; installed as the package `cnnspec.templates`."""
