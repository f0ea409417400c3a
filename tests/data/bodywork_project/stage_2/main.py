print("foo")
with open("stage_2_output.txt", "w") as f:
    f.write("foo")
