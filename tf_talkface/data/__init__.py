"""tf_talkface.data subpackage."""
