//! Prints the IntegrationResponse CRD as YAML; `crds/` holds its output.
use integration_response_operator::crd::crd_yaml;

fn main() {
    print!("{}", crd_yaml());
}
