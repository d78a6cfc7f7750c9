//! Prints a CRD as YAML; `crds/` holds the output. With no argument, IntegrationResponse;
//! `crdgen iamroleselectors` prints IAMRoleSelector.
use integration_response_operator::crd::{crd_yaml, role_selector_crd_yaml};

fn main() {
    match std::env::args().nth(1).as_deref() {
        None | Some("integrationresponses") => print!("{}", crd_yaml()),
        Some("iamroleselectors") => print!("{}", role_selector_crd_yaml()),
        Some(other) => {
            eprintln!("unknown CRD {other}: integrationresponses or iamroleselectors");
            std::process::exit(2);
        }
    }
}
