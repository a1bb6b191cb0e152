"""The segmenters: CaR (car/) and its training-free peers (peers/), selected by conf/method."""
