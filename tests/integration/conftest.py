from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def kube_client(kperf_control_plane):
    """A kubernetes ApiClient for the session's local control plane (client-certificate user)."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kperf_control_plane.kubeconfig))
    yield client
    api_client.close()


@pytest.fixture(scope="session")
def core_v1(kperf_control_plane):
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kperf_control_plane.kubeconfig))
    yield client.CoreV1Api(api_client)
    api_client.close()
