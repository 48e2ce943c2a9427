"""Stage crop: every photo cropped to its fluke box, resized once, and stored as one uint8 N x C x H x W array that
training and identification read directly (`fluke_tensors`)."""
