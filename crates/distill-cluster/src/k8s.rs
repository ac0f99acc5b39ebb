//! The steps as Kubernetes Indexed Jobs (`completionMode: Indexed`: every pod gets its index in
//! `JOB_COMPLETION_INDEX`), printed for `kubectl apply`, not submitted. Kubernetes has no
//! dependencies between Jobs, so the header says to apply each after the one before completed.

use serde_json::json;

use crate::{array_size, step_body, ClusterError, Plan, STEPS};

/// Where the shared file system comes from in the pods.
#[derive(Debug, Clone)]
pub struct K8sOptions {
    /// The container image with the distill binary at [`Plan::distill`].
    pub image: String,
    /// A PersistentVolumeClaim mounted at [`Plan::workdir`]; the recipe, its data and the cache
    /// must be under it.
    pub claim: String,
}

/// The Job names, in order.
pub fn job_name(plan: &Plan, step: &str) -> String {
    let name: String = plan.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("distill-{name}-{step}")
}

/// Every step as an Indexed Job, one YAML document each, with a header of `kubectl` commands.
pub fn manifests(plan: &Plan, options: &K8sOptions) -> Result<String, ClusterError> {
    let mut out = format!("# distill `{}` as Kubernetes Indexed Jobs (written by `distill submit --k8s`).\n", plan.name);
    out += "# Jobs have no dependencies in Kubernetes: apply each once the one before has completed, e.g.\n";
    for step in STEPS {
        let job = job_name(plan, step);
        out += &format!("#   kubectl apply -f <this file, document {job}> && kubectl wait --for=condition=complete --timeout=-1s job/{job}\n");
    }
    for step in STEPS {
        let completions = array_size(plan, step).unwrap_or(1);
        let script = format!("set -eu\n{}", step_body(plan, step, "JOB_COMPLETION_INDEX"));
        let job = json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": job_name(plan, step), "labels": {"app.kubernetes.io/name": "distill", "distill/step": step}},
            "spec": {
                "completionMode": "Indexed",
                "completions": completions,
                "parallelism": completions,
                "backoffLimit": 3 * completions,
                "template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{
                        "name": "distill",
                        "image": options.image,
                        "workingDir": plan.workdir.display().to_string(),
                        "command": ["/bin/sh", "-c", script],
                        "volumeMounts": [{"name": "shared", "mountPath": plan.workdir.display().to_string()}],
                    }],
                    "volumes": [{"name": "shared", "persistentVolumeClaim": {"claimName": options.claim}}],
                }},
            },
        });
        out += "---\n";
        out += &serde_yaml::to_string(&job).map_err(ClusterError::Yaml)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::plan;

    #[test]
    fn every_step_is_an_indexed_job_over_the_shared_claim() {
        let text = manifests(&plan(), &K8sOptions { image: "registry/distill:1".into(), claim: "shared".into() }).unwrap();
        let docs: Vec<serde_yaml::Value> = text.split("\n---\n").skip(1).map(|d| serde_yaml::from_str(d).unwrap()).collect();
        assert_eq!(docs.len(), 4);
        let completions: Vec<u64> = docs.iter().map(|d| d["spec"]["completions"].as_u64().unwrap()).collect();
        assert_eq!(completions, [1, 4, 2, 1]);
        assert!(docs.iter().all(|d| d["spec"]["completionMode"] == "Indexed"));
        let logits = docs[1]["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap();
        assert!(
            logits.contains("logits '/shared/pipelines/digits sweep.yaml' --cache-dir /shared/cache --resume --set student.train.epochs=3 --shards 4"),
            "{logits}"
        );
        let students = docs[2]["spec"]["template"]["spec"]["containers"][0]["command"][2].as_str().unwrap();
        assert!(students.contains("case \"$JOB_COMPLETION_INDEX\" in"));
        assert_eq!(docs[0]["metadata"]["name"], "distill-digits-sweep-teacher");
    }
}
