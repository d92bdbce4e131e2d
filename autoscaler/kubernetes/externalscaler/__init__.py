"""KEDA's external scaler gRPC service, generated from KEDA's own `externalscaler.proto`.

`externalscaler.proto` and `LICENSE` (Apache-2.0) are kept verbatim from github:kedacore/keda
(pkg/scalers/externalscaler/externalscaler.proto at commit
8b4f083ca8c8c2baf8477e322bd4d16ac4dfa09a). The `*_pb2*` modules are generated from it and
checked in; to regenerate (grpcio-tools), from the repository root:

    python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. \
        autoscaler/kubernetes/externalscaler/externalscaler.proto

The generated code requires protobuf and grpcio at least as new as the generator (see the
`kubernetes` extra in pyproject.toml).
"""
