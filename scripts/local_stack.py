"""Helpers for scripts/run-local.sh: free ports, moto set-up, the example (rendered for kubectl, or
applied with a plain POST when kubectl is missing), waiting."""
import json
import socket
import sys
import time
import urllib.request

import yaml


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def moto_integration(endpoint):
    import boto3

    client = boto3.client(
        "apigatewayv2", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    api = client.create_api(Name="quickstart", ProtocolType="WEBSOCKET",
                            RouteSelectionExpression="$request.body.action")["ApiId"]
    integration = client.create_integration(ApiId=api, IntegrationType="MOCK")["IntegrationId"]
    print(api, integration)


def example_ref(example):
    with open(example) as f:
        obj = yaml.safe_load(f)
    print(obj["metadata"].get("namespace", "default"), obj["metadata"]["name"])


def render_example(example, api_id, integration_id):
    """The example with moto's ids, as YAML for `kubectl apply -f -`."""
    with open(example) as f:
        obj = yaml.safe_load(f)
    obj["spec"]["apiId"] = api_id
    obj["spec"]["integrationId"] = integration_id
    print(yaml.safe_dump(obj, sort_keys=False), end="")


def apply_and_wait(kube_url, example, api_id, integration_id, seconds=60):
    with open(example) as f:
        obj = yaml.safe_load(f)
    obj["spec"]["apiId"] = api_id
    obj["spec"]["integrationId"] = integration_id
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    base = f"{kube_url}/apis/apigatewayv2.aws.operator.rs/v1alpha1/namespaces/{ns}/integrationresponses"
    request = urllib.request.Request(base, data=json.dumps(obj).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
    print(f"applied {example} as {ns}/{name}; waiting for Ready ...", flush=True)
    deadline = time.time() + seconds
    while time.time() < deadline:
        current = json.load(urllib.request.urlopen(f"{base}/{name}"))
        status = current.get("status", {})
        ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
        if ready and ready["status"] == "True" and status.get("observedGeneration") == current["metadata"]["generation"]:
            print("\nReady. status:")
            print(yaml.safe_dump(status, sort_keys=False))
            print(f"integrationResponseId: {status['integrationResponseId']}")
            return
        time.sleep(0.5)
    sys.exit(f"{ns}/{name} was not Ready after {seconds}s")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"free-port": lambda: print(free_port()),
     "wait-port": lambda: wait_port(int(args[0])),
     "moto-integration": lambda: moto_integration(*args),
     "example-ref": lambda: example_ref(*args),
     "render-example": lambda: render_example(*args),
     "apply-and-wait": lambda: apply_and_wait(*args)}[command]()
