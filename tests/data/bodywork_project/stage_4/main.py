raise RuntimeError("this stage has failed")
