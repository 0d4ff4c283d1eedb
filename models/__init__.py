"""The reference zoo: small general models per framework and builders for real architectures.

Used by tests, benchmarks and the demo. Not installed as a package; import it from the repository root.
"""
