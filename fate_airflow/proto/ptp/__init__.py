"""Generated protobuf/gRPC code (do not edit; regenerate with ``make proto``)."""
