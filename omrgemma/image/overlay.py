"""A debug picture of a page layout: staff lines, staves, systems and crop boxes in colour."""

from __future__ import annotations

import cv2
import numpy as np

from omrgemma.image.layout import PageLayout

_LINE = (0, 160, 255)  # staff lines: blue
_STAFF = (0, 170, 0)  # staff extents: green
_BOX = (230, 0, 0)  # system crop boxes: red


def draw_overlay(page: np.ndarray, layout: PageLayout) -> np.ndarray:
    """uint8[H, W] page as analysed -> uint8[H, W, 3] RGB in the deskewed frame, with every
    staff line, each staff's extent, and each system's crop box and number drawn on it."""
    height, width = page.shape
    deskewed = cv2.warpAffine(page, layout.transform, (width, height), borderValue=255)
    image = np.repeat(deskewed[:, :, None], 3, axis=2)
    stroke = max(1, round(layout.spacing / 8))
    for number, system in enumerate(layout.systems, start=1):
        x0, y0, x1, y1 = (round(v) for v in system.box)
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), _BOX, 2 * stroke)
        cv2.putText(
            image,
            str(number),
            (x0 + 4 * stroke, y0 + 12 * stroke),
            cv2.FONT_HERSHEY_SIMPLEX,
            stroke * 0.8,
            _BOX,
            2 * stroke,
        )
        for staff in system.staves:
            middle = width / 2
            for y in staff.line_ys:
                start = (round(staff.x0), round(y + staff.slope * (staff.x0 - middle)))
                end = (round(staff.x1), round(y + staff.slope * (staff.x1 - middle)))
                cv2.line(image, start, end, _LINE, stroke)
            outline = [
                (staff.x0, staff.top),
                (staff.x1, staff.top),
                (staff.x1, staff.bottom),
                (staff.x0, staff.bottom),
            ]
            corners = np.array(
                [(round(x), round(y + staff.slope * (x - middle))) for x, y in outline], np.int32
            )
            cv2.polylines(image, [corners], True, _STAFF, stroke)
    return image
