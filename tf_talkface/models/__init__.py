"""tf_talkface.models subpackage."""
