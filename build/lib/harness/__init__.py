"""The GLUE fine-tuning harness: config -> data -> model -> method -> Trainer -> result.json."""
