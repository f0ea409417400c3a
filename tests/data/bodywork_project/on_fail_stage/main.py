with open("on_fail_stage_output.txt", "w") as f:
    f.write("the workflow failed")
