"""Backends: ``Graph`` -> trainable native model. One package per framework, imported lazily."""
