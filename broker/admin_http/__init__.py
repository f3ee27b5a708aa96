"""The admin API's HTTP server: edgemq's accept loop around uvicorn's HTTP/1.1 protocol."""
