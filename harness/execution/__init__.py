"""Running one experiment: from a validated config (``lifecycle``, ``experiment``) through the method
contract (``methods``) and the assembled model and callbacks (``assembly``) to the Trainer (``training``,
``optim``) and what it records (``history``, ``params``, ``epoch_timer``, ``tracking``)."""
