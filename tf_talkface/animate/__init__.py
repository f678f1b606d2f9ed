"""tf_talkface.animate: the talking photo (one photo + a landmark sequence -> frames).

Modules:

* :mod:`~tf_talkface.animate.photo` -- load/validate a photo, find its face, frame the output;
* :mod:`~tf_talkface.animate.photo_warp` -- face mesh + dense backward warp (one ``cv2.remap``);
* :mod:`~tf_talkface.animate.motion` -- landmark transfer, smoothing, head motion, blinks, energy;
* :mod:`~tf_talkface.animate.animator` -- :class:`PhotoAnimator` (push/flush streaming and
  offline), :func:`animate_photo`, :func:`write_talking_photo`;
* :mod:`~tf_talkface.animate.compose` -- paste a generated aligned face crop back into the photo.
"""
