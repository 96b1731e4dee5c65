"""Test helpers shipped with the package (the demo uses them too): tiny random models built offline."""
