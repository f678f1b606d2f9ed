"""tf_talkface.face subpackage."""
