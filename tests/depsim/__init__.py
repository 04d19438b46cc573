"""Tests of the bundled Apple DEP simulator (portal/depsim), over real HTTP."""
