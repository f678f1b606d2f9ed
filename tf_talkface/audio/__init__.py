"""tf_talkface.audio subpackage."""
