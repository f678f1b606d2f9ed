"""Drawing 68-point faces: images, plots, and mp4 videos with sound.

One face-drawing core and one mp4 writer, shared by every renderer:

- :mod:`tf_talkface.viz.draw`: the core. Conventions, input checks, the fitted :class:`View`
  (one similarity transform per sequence), the face's edge groups, the ``"lines"`` style (OpenCV)
  and :func:`~tf_talkface.viz.draw.draw_face` on a matplotlib axis.
- :mod:`tf_talkface.viz.painted`: the ``"painted"`` style (the 2020 demo look).
- :mod:`tf_talkface.viz.draw3d`: the ``"3d"`` style (matplotlib wireframe, sweeping camera).
- :mod:`tf_talkface.viz.render`: landmark sequences -> frames in any style -> mp4 (single or
  side by side) or PNG.
- :mod:`tf_talkface.viz.video_io`: the mp4 writer (an iterator of RGB frames + optional sound ->
  H.264/AAC, atomic) and the PNG writer; it knows nothing about faces.
- :mod:`tf_talkface.viz.plots`: matplotlib set-up (:func:`~tf_talkface.viz.plots.pyplot`),
  atomic figure saving, landmark overlays on video frames.

Inside the package: ``draw`` <- ``painted``, ``draw3d``, ``plots``; ``render`` uses the styles
and ``video_io``. OpenCV and matplotlib are imported only when something is drawn.
"""
