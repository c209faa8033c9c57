"""Helm charts kperf installs (runner groups, kwok node pools), shipped as package data."""
