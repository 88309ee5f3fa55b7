"""Test support shared by the suites (no tests here; a test module never imports another test
module, tests/unit/test_test_imports.py checks it):

- operator.py: the one operator launcher (`OperatorProcess`, `start_operator`,
  `running_operator`);
- jobqueues.py: the operator's integration tests on the control plane (fixtures `crd`,
  `operator`, `ns`; manifests and reads; `admit`);
- kube.py: `apply`, `condition`, the JobQueue CRD install, a throw-away namespace;
- services.py, api.py: the API and worker as processes, the API in-process;
- redis_topologies.py: a Redis Cluster and a TLS redis-server as fixtures;
- spec_cases.py: specs the model and admission both refuse or take;
- waiting.py, openapi.py.

`free_port` is tests.cluster.procs.free_port (tests/cluster is what the demo and the benchmarks
use as well)."""
