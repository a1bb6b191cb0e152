"""CaR on your own images: the car-segment command and the car-demo web app (the Python API is car.api)."""
